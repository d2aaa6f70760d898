"""chuteflow: stream."""
