"""lllt_sim: a simulated photobiomodulation cap speaking lllt wire protocol v1."""
