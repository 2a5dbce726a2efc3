"""dcprestage: prestage StarlingX subclouds from the command line."""
