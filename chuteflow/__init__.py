"""chuteflow: robust multi-agent chute allocation for robotic sortation, served on Kafka."""

import os

# Every matrix here is small (a few hundred rows). OpenBLAS's thread pool makes such products
# ~20x slower on a busy 2-core machine than one thread does, so one thread is the default;
# set OPENBLAS_NUM_THREADS yourself to override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
