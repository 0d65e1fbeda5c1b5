"""The lab: study reproductions (`experiments.studies`) and the scripts that run them and the `tfprune` tools."""
