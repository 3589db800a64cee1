package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metric families read from the server's /metrics (--metrics-url).
const (
	fanoutFamily = "marketgate_fanout_duration_seconds"
	writesFamily = "marketgate_client_writes_total"
	framesFamily = "marketgate_frames_out_total"
)

// serverMetrics is what the gateway's /metrics said at one moment.
type serverMetrics struct {
	// fanout holds the fan-out duration histogram's cumulative counts
	// by upper bound (seconds, +Inf last), sorted by bound.
	bounds []float64
	counts []uint64
	sum    float64
	writes float64
	frames float64
}

// FanOut is the server's fan-out duration over the window, from its
// histogram (per event: arrival to the last subscriber's frame handed to
// the kernel), and its writes per frame.
type FanOut struct {
	Events uint64  `json:"events"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	P99MS  float64 `json:"p99_ms"`
	// Writes counts write system calls to clients, Frames the stream
	// frames queued; FramesPerWrite is their ratio.
	Writes         float64 `json:"writes"`
	Frames         float64 `json:"frames"`
	FramesPerWrite float64 `json:"frames_per_write"`
}

// fetchServerMetrics reads url (Prometheus text) for the families above.
func fetchServerMetrics(ctx context.Context, url string) (serverMetrics, error) {
	var m serverMetrics
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return m, fmt.Errorf("metrics %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return m, fmt.Errorf("metrics %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("metrics %s: %s", url, resp.Status)
	}
	m, err = parseServerMetrics(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return m, fmt.Errorf("metrics %s: %w", url, err)
	}
	return m, nil
}

// parseServerMetrics reads Prometheus text; it fails when the fan-out
// histogram is missing (a server without it, or not marketgate).
func parseServerMetrics(r io.Reader) (serverMetrics, error) {
	var m serverMetrics
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return m, err
	}
	f, ok := fams[fanoutFamily]
	if !ok || len(f.GetMetric()) == 0 || f.GetMetric()[0].GetHistogram() == nil {
		return m, fmt.Errorf("no %s histogram", fanoutFamily)
	}
	h := f.GetMetric()[0].GetHistogram()
	bs := h.GetBucket()
	sort.Slice(bs, func(i, j int) bool { return bs[i].GetUpperBound() < bs[j].GetUpperBound() })
	for _, b := range bs {
		m.bounds = append(m.bounds, b.GetUpperBound())
		m.counts = append(m.counts, b.GetCumulativeCount())
	}
	if len(m.bounds) == 0 || !math.IsInf(m.bounds[len(m.bounds)-1], 1) {
		m.bounds = append(m.bounds, math.Inf(1))
		m.counts = append(m.counts, h.GetSampleCount())
	}
	m.sum = h.GetSampleSum()
	m.writes = counterValue(fams[writesFamily])
	m.frames = counterValue(fams[framesFamily])
	return m, nil
}

func counterValue(f *dto.MetricFamily) float64 {
	if f == nil || len(f.GetMetric()) == 0 {
		return 0
	}
	return f.GetMetric()[0].GetCounter().GetValue()
}

// fanOutBetween returns the window's figures from the metrics at its
// start and end. Percentiles interpolate linearly within a bucket; one
// in the +Inf bucket reads as the largest finite bound.
func fanOutBetween(a, b serverMetrics) FanOut {
	var r FanOut
	if len(a.bounds) != len(b.bounds) {
		return r
	}
	d := make([]uint64, len(b.counts))
	for i := range d {
		d[i] = b.counts[i] - a.counts[i]
	}
	r.Events = d[len(d)-1]
	r.Writes, r.Frames = b.writes-a.writes, b.frames-a.frames
	if r.Writes > 0 {
		r.FramesPerWrite = r.Frames / r.Writes
	}
	if r.Events == 0 {
		return r
	}
	r.MeanMS = 1000 * (b.sum - a.sum) / float64(r.Events)
	q := func(q float64) float64 {
		rank := q * float64(r.Events)
		lo, prev := 0.0, uint64(0)
		for i, c := range d {
			hi := b.bounds[i]
			if float64(c) >= rank {
				if math.IsInf(hi, 1) {
					return 1000 * lo
				}
				if c == prev {
					return 1000 * hi
				}
				return 1000 * (lo + (hi-lo)*(rank-float64(prev))/float64(c-prev))
			}
			lo, prev = hi, c
		}
		return 1000 * lo
	}
	r.P50MS, r.P90MS, r.P99MS = q(0.5), q(0.9), q(0.99)
	return r
}
