# The one image the Helm chart runs: `powertrain operator` (Deployment) and `powertrain agent` (DaemonSet).
# Build: docker build -t <registry>/powertrain:<version> .   (version: powertrain --version)
# Not built by the project's CI: its machines have no container engine (see charts/powertrain/README.md).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY agents ./agents
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1
COPY --from=build /wheels /wheels
RUN pip install --no-compile /wheels/*.whl \
    && python -m compileall -q /usr/local/lib/python3.11/site-packages/powertrain /usr/local/lib/python3.11/site-packages/powertrain_agent \
    && rm -rf /wheels \
    # The agent may run as uid 0 with CAP_SYS_ADMIN (power capping) and allowPrivilegeEscalation left on:
    # no setuid/setgid binary must be there to escalate through.
    && find / -xdev -perm /6000 -type f -exec chmod a-s {} + \
    && groupadd --gid 65532 powertrain \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin powertrain
# Runs read-only in the chart: nothing is written at run time except /tmp (an emptyDir).
USER 65532:65532
ENTRYPOINT ["powertrain"]
CMD ["--help"]
