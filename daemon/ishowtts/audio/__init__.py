"""Audio out: the mixer, the player that supervises it, and the outputs it plays on."""
