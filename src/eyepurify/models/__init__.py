"""Neural networks: purifier, attention, segmentation, loss-network backbones."""
