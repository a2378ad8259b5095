package policysource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/collector/config/confighttp"
	"go.uber.org/zap"

	"github.com/contprof/contprof/internal/periodic"
)

// HTTPConfig is the `policy_url` setting: where to poll and how often, plus
// every confighttp client setting (TLS, headers, auth, timeout, proxy).
type HTTPConfig struct {
	confighttp.ClientConfig `mapstructure:",squash"`
	// PollInterval is the time between two requests.
	PollInterval time.Duration `mapstructure:"poll_interval"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// Defaults of HTTPConfig.
const (
	DefaultPollInterval = 10 * time.Second
	DefaultHTTPTimeout  = 5 * time.Second
)

// NewDefaultHTTPConfig returns the defaults: poll every 10s, 5s timeout.
func NewDefaultHTTPConfig() HTTPConfig {
	cc := confighttp.NewDefaultClientConfig()
	cc.Timeout = DefaultHTTPTimeout
	return HTTPConfig{ClientConfig: cc, PollInterval: DefaultPollInterval}
}

// Validate names the field and the value that is wrong.
func (c *HTTPConfig) Validate() error {
	if c.Endpoint == "" {
		return errors.New("endpoint: is required (e.g. https://policies.example/v1/policies)")
	}
	req, err := http.NewRequest(http.MethodGet, c.Endpoint, nil)
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") || req.URL.Host == "" {
		return fmt.Errorf("endpoint: %q is not an http(s) URL", c.Endpoint)
	}
	if c.PollInterval < time.Second {
		return fmt.Errorf("poll_interval: %s must be at least 1s", c.PollInterval)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("timeout: %s must not be negative", c.Timeout)
	}
	// One poll must end before the next is due; a longer timeout would
	// otherwise be cut to the interval without a word.
	if c.Timeout > c.PollInterval {
		return fmt.Errorf("timeout: %s is longer than poll_interval %s; a request must end before the next poll (raise poll_interval or lower timeout)", c.Timeout, c.PollInterval)
	}
	return nil
}

// HTTP polls a URL for the policy document. It sends If-None-Match with the
// last ETag so an unchanged document costs a 304 and no parsing.
type HTTP struct {
	client   *http.Client
	endpoint string
	interval time.Duration
	timeout  time.Duration
	logger   *zap.Logger
	onUpdate func(Update)

	t        tracker
	etag     string
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// NewHTTP returns a poller using client (built from HTTPConfig by
// confighttp, so TLS and auth apply).
func NewHTTP(client *http.Client, cfg HTTPConfig, logger *zap.Logger, onUpdate func(Update)) *HTTP {
	// Validate keeps timeout within the poll interval; 0 (confighttp's
	// "no timeout") means the whole interval, as an unbounded request
	// would stall polling forever.
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = cfg.PollInterval
	}
	return &HTTP{
		client: client, endpoint: cfg.Endpoint, interval: cfg.PollInterval, timeout: timeout,
		logger: logger, onUpdate: onUpdate,
		t: tracker{kind: KindURL, location: cfg.Endpoint},
	}
}

// Start polls once (reporting the result before returning, bounded by the
// timeout) and then every poll interval until Shutdown.
func (h *HTTP) Start(ctx context.Context) {
	ctx, h.cancel = context.WithCancel(context.WithoutCancel(ctx))
	h.Poll(ctx)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		periodic.Run(ctx, h.interval, func(time.Time) { h.Poll(ctx) })
	}()
}

// Poll makes one request and reports a change, if any.
func (h *HTTP) Poll(ctx context.Context) {
	u, changed := h.fetch(ctx)
	if changed && ctx.Err() == nil {
		h.onUpdate(u)
	}
}

func (h *HTTP) fetch(ctx context.Context) (Update, bool) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.endpoint, nil)
	if err != nil {
		return h.t.failed(fmt.Errorf("%s: %w", h.endpoint, err))
	}
	req.Header.Set("Accept", "application/yaml, application/json;q=0.9, */*;q=0.5")
	if h.etag != "" {
		req.Header.Set("If-None-Match", h.etag)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("no response within %s", h.timeout)
		}
		return h.t.failed(fmt.Errorf("GET %s: %w", h.endpoint, err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && h.etag != "":
		return h.t.unchanged()
	case resp.StatusCode != http.StatusOK:
		return h.t.failed(fmt.Errorf("GET %s: HTTP %s", h.endpoint, resp.Status))
	}
	data, err := readLimited(resp.Body)
	if err != nil {
		return h.t.failed(fmt.Errorf("GET %s: reading body: %w", h.endpoint, err))
	}
	u, changed := h.t.loaded(data)
	// Keep the ETag even of a bad document: until it changes, a 304 is
	// the right answer and the error stays reported.
	h.etag = resp.Header.Get("ETag")
	return u, changed
}

// Shutdown stops polling and waits for an in-flight request to end.
func (h *HTTP) Shutdown() {
	h.stopOnce.Do(func() {
		if h.cancel != nil {
			h.cancel()
		}
	})
	h.wg.Wait()
}
