// Package audit is gatectl's tamper-evident audit log: the event model, the
// hash chain that links events, a batching writer for hot paths, the JSON
// line encoding stores keep events in, chain verification and JSON Lines
// export.
//
// Every event carries a sequence number, the hash of the event before it
// (Prev) and its own hash over everything else (see Event.ComputeHash). An
// edited, removed or reordered event breaks the chain, and Verify says where.
// The chain proves the log has not been rewritten in the middle; to detect a
// truncated tail as well, keep the head hash that Verify and Store.Tail report
// somewhere the gateway cannot write.
package audit
