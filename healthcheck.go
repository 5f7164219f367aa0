package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

const defaultHealthURL = "http://127.0.0.1:8090/api/health"

// newHealthcheckCommand is `clinicmsg healthcheck`: exit 0 when the appliance answers its
// health route, 1 otherwise. It is the container's HEALTHCHECK, since the distroless image
// has no curl or wget.
func newHealthcheckCommand() *cobra.Command {
	var url string
	var timeout time.Duration
	c := &cobra.Command{
		Use:          "healthcheck",
		Short:        "Exit 0 if the appliance answers GET /api/health, 1 otherwise (for container health checks)",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		Annotations:  map[string]string{annotationStandalone: "true"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return checkHealth(ctx, url)
		},
	}
	c.Flags().StringVar(&url, "url", defaultHealthURL, "the health route to ask")
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the answer")
	return c
}

// checkHealth asks url once and returns an error unless it answers 200.
func checkHealth(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("failed to build the health request: %w", err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("failed to reach %s: %w", url, err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", url, res.StatusCode)
	}
	return nil
}
