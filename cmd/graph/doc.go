// Package graph assembles a running strata from a configuration: it turns a
// *config.Config into live objects — listeners, the L4 rules and front
// stages of each frontend, the sessions' routers, the backends with their
// connectors and health checks — and swaps them on reload.
//
// A Graph is the set of live objects built from one Config; a Runtime owns
// the listening sockets across reloads and hands each one to the Graph in
// force. Sessions that started on an old Graph finish on it.
package graph
