"""chuteflow: decision."""
