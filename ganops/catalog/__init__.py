"""What exists, by name: the families, encoders and losses, each declared once. The schema, artifact
identities and both front doors read these tables without loading torch; each entry names its implementation."""
