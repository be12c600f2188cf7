package gateway

import "time"

// SetRefusalReportEvery sets how often counted refusals are written as
// events, for gateways started afterwards; tests that wait for the counts
// use a short interval.
func SetRefusalReportEvery(d time.Duration) { refusalReportEvery = d }

// SetAPIIdleTimeout sets how long the API of gateways started afterwards
// keeps an idle connection.
func SetAPIIdleTimeout(d time.Duration) { apiIdleTimeout = d }
