"""MAQBOOL regions: Edge Boxes proposals (edge_boxes) and region NetVLAD descriptors."""
