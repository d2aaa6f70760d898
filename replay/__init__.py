"""chuteflow: replay."""
