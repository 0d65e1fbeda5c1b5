"""The one network graph (`ir`), its ops (`ops`) and its evaluator (`evaluator`)."""
