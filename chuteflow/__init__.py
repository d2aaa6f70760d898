"""chuteflow: robust multi-agent chute allocation for robotic sortation, served on Kafka."""
