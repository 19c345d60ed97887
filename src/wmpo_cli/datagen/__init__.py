"""MimicGen-style demonstration generation: a few source demos -> many new ones in new scenes."""
