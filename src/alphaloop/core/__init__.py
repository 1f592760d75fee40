"""Domain types, the error hierarchy, configuration and ids. Depends on nothing else in alphaloop."""
