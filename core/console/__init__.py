"""Read models, one module per screen (plus shared formatting, partners, status, exports and charts); every function
takes a Principal and only reads."""
