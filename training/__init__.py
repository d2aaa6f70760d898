"""chuteflow: training."""
