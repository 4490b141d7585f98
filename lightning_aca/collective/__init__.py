"""What a collective does to data: signals g, strategies h, membership and wrapped datasets."""
