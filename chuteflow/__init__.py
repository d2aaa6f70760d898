"""chuteflow: chuteflow."""
