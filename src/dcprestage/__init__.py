"""dcprestage: prestage StarlingX subclouds from the command line."""

__version__ = "0.1.0"  # the collection's version (galaxy.yml); a test keeps them equal
