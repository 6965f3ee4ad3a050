"""Colourization of CIFAR-10 horses as 24-colour classification (assignment Parts A-C)."""
