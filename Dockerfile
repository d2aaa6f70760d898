# The chuteflow app image for docker-compose.yml (worker, replay, `chuteflow kafka topics`).
# Runtime dependencies only: no dev tools.
# The package folders are copied one by one so a local .venv or out/ never enters the image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY chuteflow ./chuteflow
COPY floor ./floor
COPY contracts ./contracts
COPY decision ./decision
COPY stream ./stream
COPY localkafka ./localkafka
COPY replay ./replay
COPY twin ./twin
COPY training ./training
COPY evaluation ./evaluation
RUN pip install . \
    && useradd --create-home --uid 10001 chuteflow

USER chuteflow
CMD ["chuteflow", "--help"]
