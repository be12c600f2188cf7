package identity

import "log/slog"

// quiet discards the logs of verifiers under test.
var quiet = slog.New(slog.DiscardHandler)
