# clinicmsg in a container: a static binary on distroless, running as a non-root user, with
# the data folder on the /pb_data volume. Build and run (docs/OPERATIONS.md):
#
#   docker build -t clinicmsg \
#     --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg COMMIT=$(git rev-parse --short=12 HEAD) \
#     --build-arg DATE=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ) .
#   docker run -d -p 127.0.0.1:8090:8090 -v clinicmsg-data:/pb_data clinicmsg

# Any Go from 1.21 on will do: GOTOOLCHAIN=auto fetches the toolchain go.mod names.
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS build
ENV GOTOOLCHAIN=auto
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The context has no .git (.dockerignore), so the version comes in as build arguments.
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
ARG TARGETARCH
# The same target as a release, for this image's architecture alone.
RUN make release RELEASE_ARCHS="${TARGETARCH:-amd64}" VERSION="${VERSION}" COMMIT="${COMMIT}" DATE="${DATE}" \
	&& cp "dist/clinicmsg-linux-${TARGETARCH:-amd64}" /clinicmsg \
	&& mkdir /pb_data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /clinicmsg /clinicmsg
# A new named volume starts as a copy of this folder, so it belongs to the non-root user.
COPY --from=build --chown=nonroot:nonroot /pb_data /pb_data
USER nonroot:nonroot
VOLUME /pb_data
EXPOSE 8090
# distroless has no curl: the binary asks its own health route.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
	CMD ["/clinicmsg", "healthcheck", "--url", "http://127.0.0.1:8090/api/health"]
ENTRYPOINT ["/clinicmsg"]
CMD ["serve", "--http", "0.0.0.0:8090", "--dir", "/pb_data"]
