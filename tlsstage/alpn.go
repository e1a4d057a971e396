package tlsstage

// ALPNTable maps the protocol negotiated by ALPN to the stage that serves
// it, as net/http's TLSNextProto does, and gives the list a TLS config
// offers. It is the single place the next stage after TLS decode is chosen:
// "http/1.1" today, and the one table later work extends with "h2" and
// "h3". "acme-tls/1" is not in it: no stage follows that protocol, the TLS
// decode stage answers it itself (ServerOptions.ChallengeCert).
//
// A table is filled while a configuration is built and only read
// afterwards; reads may then run concurrently. The zero value is empty and
// ready to use.
type ALPNTable[T any] struct {
	protos []string
	next   map[string]T
	def    T
	hasDef bool
}

// Register makes next the stage for proto. Protocols are offered in the
// order they are first registered; registering a protocol again replaces
// its stage and keeps its place. Registering "" is the same as Default.
func (t *ALPNTable[T]) Register(proto string, next T) {
	if proto == "" {
		t.Default(next)
		return
	}
	if t.next == nil {
		t.next = make(map[string]T)
	}
	if _, ok := t.next[proto]; !ok {
		t.protos = append(t.protos, proto)
	}
	t.next[proto] = next
}

// Default makes next the stage for connections that negotiated no ALPN
// protocol.
func (t *ALPNTable[T]) Default(next T) {
	t.def, t.hasDef = next, true
}

// Protocols returns the registered protocols in registration order, for
// tls.Config.NextProtos. The slice is the caller's.
func (t *ALPNTable[T]) Protocols() []string {
	return append([]string(nil), t.protos...)
}

// Lookup returns the stage for the negotiated protocol alpn; "" (no ALPN)
// gives the Default stage. ok is false when nothing is registered for it.
func (t *ALPNTable[T]) Lookup(alpn string) (next T, ok bool) {
	if alpn == "" {
		return t.def, t.hasDef
	}
	next, ok = t.next[alpn]
	return next, ok
}
