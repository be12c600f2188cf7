package postgres

import "testing"

// TestFailedBindsPastTheLimit shows that a session which stops keeping
// failed Binds (more than maxPortals of them in one transaction) says it
// cannot tell which statement an Execute ran, rather than name the failed
// Bind's. The Bind of pl1 to the benign statement fails (42P03, then 25P02
// in the aborted transaction) past the limit, and after ROLLBACK TO
// SAVEPOINT the Execute runs the statement bound before it.
func TestFailedBindsPastTheLimit(t *testing.T) {
	defer func(n int) { maxFailedBinds = n }(maxFailedBinds)
	maxFailedBinds = 8
	g := startGateway(t, gatewayOptions{plainClients: true})
	const (
		X  = KindExecute
		Qk = KindQuery
	)
	steps := []step{
		{msgs{&Q{String: "BEGIN"}}, "ready", 1},
		{msgs{&P{Name: "sl1a", Query: "SELECT 'lost-ran'"}, &P{Name: "sl1b", Query: "SELECT 'lost-benign'"}, &B{DestinationPortal: "pl1", PreparedStatement: "sl1a"}, &S{}}, "ready", 1},
		{msgs{&Q{String: "SAVEPOINT sl1"}}, "ready", 1},
	}
	var binds msgs
	for range maxFailedBinds + 1 {
		binds = append(binds, &B{DestinationPortal: "pl1", PreparedStatement: "sl1b"}, &S{})
	}
	steps = append(steps, step{binds, "ready", maxFailedBinds + 1})
	steps = append(steps,
		step{msgs{&Q{String: "ROLLBACK TO SAVEPOINT sl1"}}, "ready", 1},
		step{msgs{&E{Portal: "pl1"}, &S{}}, "ready", 1},
		step{msgs{&Q{String: "COMMIT"}}, "ready", 1})
	runPipeline(t, g, true, steps, []pev{
		{Qk, "BEGIN", "", true, true}, {Qk, "SAVEPOINT sl1", "", true, true}, {Qk, "ROLLBACK TO SAVEPOINT sl1", "", true, true},
		{X, `-- Execute of portal "pl1", whose last Bind did not take effect: the gateway cannot tell which earlier Bind of it ran`, "", true, true},
		{Qk, "COMMIT", "", true, true}})
}
