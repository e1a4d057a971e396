// Package config is the schema of strata's YAML configuration file and its
// strict parser.
//
// It sits at the very start of the pipeline: `strata validate`, `strata run`
// and every reload call [Load] or [Parse], and the assembly code in cmd
// builds listeners, L4 rules, stages, sessions and connectors from the
// [Config] it returns. Nothing here opens a socket or starts a goroutine;
// a Config is plain data, read-only once returned, and a reload simply
// parses a new one.
//
// Parsing walks the yaml.Node tree itself rather than decoding into
// structs, so that every problem (an unknown key, a wrong type, an
// impossible value, a reference to a backend that does not exist, two
// listeners on the same address, a certificate whose key does not match)
// is reported as an [Error] at the line and column of the node that caused
// it. Parse does not stop at the first problem: it returns them all, sorted,
// as [Errors].
//
// Defaults are applied during the parse: each [Frontend] and [Backend]
// carries its effective [Timeouts], retries, per-server limits and
// [HTTPLimits], so the runtime never consults [Defaults]. Sections that only
// mode http has ([HTTPRule], [Headers], [Forwarded], [RequestID], error
// files, a [Route]'s host, path, header and [Redirect]) are errors on a
// mode tcp frontend, and so is a reference from one to a backend that reads
// requests (uri or header balancing, [Cookie] persistence). Relative file paths are resolved
// against the directory of the configuration file.
package config
