"""The reproduction studies (A: Fashion-MNIST, B: LeNet-5, C: ResNet-18, gradual pruning, lottery trials), composing the core; nothing in the core imports them."""
