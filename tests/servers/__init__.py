"""Local servers that speak the platforms' real wire protocols, for the connector tests."""
