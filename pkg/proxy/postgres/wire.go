package postgres

import (
	"bufio"
	"errors"

	"github.com/jackc/pgx/v5/pgproto3"
)

// SQLSTATE codes the gateway itself sends.
const (
	codeInvalidAuthorization = "28000" // invalid_authorization_specification
	codeInvalidPassword      = "28P01" // invalid_password
	codeInsufficientPriv     = "42501" // insufficient_privilege
	codeCannotConnect        = "08001" // sqlclient_unable_to_establish_sqlconnection
	codeConnectionRejected   = "08004" // sqlserver_rejected_establishment_of_sqlconnection
	codeTooManyConnections   = "53300" // too_many_connections
	codeConnectionFailure    = "08006" // connection_failure
	codeProtocolViolation    = "08P01" // protocol_violation
	codeFeatureNotSupported  = "0A000" // feature_not_supported
	codeUndefinedPstatement  = "26000" // invalid_sql_statement_name
	codeProgramLimitExceeded = "54000" // program_limit_exceeded
	codeAdminShutdown        = "57P01" // admin_shutdown
	codeInternalError        = "XX000" // internal_error
)

// clientError is an error the gateway reports to the client as a FATAL
// ErrorResponse before closing the connection. Msg is shown to the client,
// so it must never carry a credential or token.
type clientError struct {
	Code string
	Msg  string
	Hint string
}

func (e *clientError) Error() string { return e.Msg }

// fatal builds a clientError.
func fatal(code, msg string) *clientError { return &clientError{Code: code, Msg: msg} }

// refusal builds the clientError of a refusal by the gateway: SQLSTATE
// 42501 with RefusalHint, which tells it apart from the target's own
// permission errors.
func refusal(msg string) *clientError {
	return &clientError{Code: codeInsufficientPriv, Msg: msg, Hint: RefusalHint}
}

// appendMessage encodes msg onto dst.
func appendMessage(dst []byte, msg pgproto3.BackendMessage) []byte {
	out, err := msg.Encode(dst)
	if err != nil {
		// The messages the gateway builds are always encodable; keep dst as
		// it was rather than sending half a message.
		return dst
	}
	return out
}

// appendFatal encodes e as a FATAL ErrorResponse onto dst.
func appendFatal(dst []byte, e *clientError) []byte {
	return appendMessage(dst, &pgproto3.ErrorResponse{
		Severity:            "FATAL",
		SeverityUnlocalized: "FATAL",
		Code:                e.Code,
		Message:             e.Msg,
		Hint:                e.Hint,
	})
}

// writeFatal sends err to the client as a FATAL ErrorResponse and flushes.
// A *clientError keeps its code and message; anything else is reported as an
// internal gateway error without its text, which may not be fit for clients.
func writeFatal(w *bufio.Writer, err error) error {
	var ce *clientError
	if !errors.As(err, &ce) {
		ce = fatal(codeInternalError, "gateway internal error; see the gateway log")
	}
	if _, werr := w.Write(appendFatal(nil, ce)); werr != nil {
		return werr
	}
	return w.Flush()
}
