package cmdutil

import (
	"os"
	"strings"

	"github.com/gatectl/gatectl/pkg/client"
)

// DefaultGateway is the API address of a gateway on this machine.
const DefaultGateway = "https://127.0.0.1:8443"

// Factory holds the global flags and builds what commands need, lazily, so
// a command that needs no gateway never touches the network or the token.
type Factory struct {
	IO *IOStreams
	// Getenv reads the environment; tests replace it.
	Getenv func(string) string

	GatewayURL string // --gateway, else GATECTL_GATEWAY, else DefaultGateway
	TokenFile  string // --token-file
	Output     string // --output
}

// New returns a factory over the process's streams and environment.
func New(io *IOStreams) *Factory {
	return &Factory{IO: io, Getenv: os.Getenv}
}

// Gateway is the gateway API URL to use.
func (f *Factory) Gateway() string {
	if f.GatewayURL != "" {
		return f.GatewayURL
	}
	if g := f.Getenv("GATECTL_GATEWAY"); g != "" {
		return g
	}
	return DefaultGateway
}

// Token finds the caller's token: --token-file when it is given, then
// GATECTL_TOKEN. A flag on the command line is what the caller asked for
// just now, so it wins, and a file it names that cannot be read is an
// error rather than a silent fall-back to another identity.
func (f *Factory) Token() (string, error) {
	if f.TokenFile != "" {
		b, err := os.ReadFile(f.TokenFile)
		if err != nil {
			return "", &AuthError{Msg: "read --token-file: " + err.Error()}
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", &AuthError{Msg: "--token-file " + f.TokenFile + " is empty"}
	}
	if t := strings.TrimSpace(f.Getenv("GATECTL_TOKEN")); t != "" {
		return t, nil
	}
	return "", &AuthError{Msg: "no token: set GATECTL_TOKEN or pass --token-file (on a --dev gateway: export GATECTL_TOKEN=$(gatectl dev token --sub you))"}
}

// Client returns an API client carrying the caller's token.
func (f *Factory) Client() (*client.Client, error) {
	tok, err := f.Token()
	if err != nil {
		return nil, err
	}
	return f.client(tok)
}

// AnonymousClient returns an API client without a token.
func (f *Factory) AnonymousClient() (*client.Client, error) { return f.client("") }

func (f *Factory) client(tok string) (*client.Client, error) {
	return client.New(client.Options{Gateway: f.Gateway(), CAFile: f.Getenv("GATECTL_CA"), Token: tok})
}

// Format resolves --output: a table on a terminal, TSV otherwise.
func (f *Factory) Format() (Format, error) {
	fm, err := ParseFormat(f.Output)
	if err != nil || fm != FormatAuto {
		return fm, err
	}
	if f.IO.IsTerminal() {
		return FormatTable, nil
	}
	return FormatTSV, nil
}
