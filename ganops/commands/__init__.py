"""The command line (``cli``) and the commands that are not stages: ``ganops sample`` (``sample``) and
``ganops translate`` (``translate``)."""
