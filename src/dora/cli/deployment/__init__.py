"""``dora deployment [list | show | mark]``: record a deployment (``record``), and look at
(``view``) or correct (``mark``) recorded ones; ``record.app`` loads the others when asked."""
