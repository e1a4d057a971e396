package config

import (
	"net/netip"
	"slices"
)

// listenKind classifies a bind host for overlap checks.
type listenKind int

const (
	anyFamily listenKind = iota // "" or [::]: every address of both families
	anyV4                       // 0.0.0.0: every IPv4 address
	specific                    // one IP address or host name
)

// classify returns the kind of a listener host and, for specific hosts,
// the identities it occupies: the IP itself, or for "localhost" both
// loopback addresses. Other host names are compared by name: Parse does
// not resolve names.
func classify(host string) (listenKind, []string, bool /* v4 */, bool /* v6 */) {
	if host == "" {
		return anyFamily, nil, true, true
	}
	if host == "localhost" {
		return specific, []string{"127.0.0.1", "::1"}, true, true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return specific, []string{"name:" + host}, true, true
	}
	ip = ip.Unmap()
	switch {
	case ip.IsUnspecified() && ip.Is4():
		return anyV4, nil, true, false
	case ip.IsUnspecified():
		// Go listens dual-stack on [::], so it takes IPv4 too.
		return anyFamily, nil, true, true
	}
	return specific, []string{ip.String()}, ip.Is4(), ip.Is6()
}

// portListeners is what one port already has, first occurrence of each.
type portListeners struct {
	anyFamily *ListenAddr
	anyV4     *ListenAddr
	firstV4   *ListenAddr // first specific listener that takes IPv4
	firstV6   *ListenAddr // first specific listener that takes IPv6
	byIdent   map[string]*ListenAddr
}

// checkListeners reports each listener that overlaps an earlier one, in
// file order, naming both positions. A wildcard overlaps any specific
// address of its family on the same port.
func (p *parser) checkListeners(frontends []*Frontend) {
	var all []*ListenAddr
	for _, fe := range frontends {
		for i := range fe.Bind {
			all = append(all, &fe.Bind[i])
		}
	}
	// Frontends are sorted by name; report in file order.
	sortByPos(all)
	ports := map[int]*portListeners{}
	for _, a := range all {
		pl := ports[a.Port]
		if pl == nil {
			pl = &portListeners{byIdent: map[string]*ListenAddr{}}
			ports[a.Port] = pl
		}
		kind, idents, v4, v6 := classify(a.Host)
		var clash *ListenAddr
		switch kind {
		case anyFamily:
			clash = first(pl.anyFamily, pl.anyV4, pl.firstV4, pl.firstV6)
		case anyV4:
			clash = first(pl.anyFamily, pl.anyV4, pl.firstV4)
		case specific:
			clash = pl.anyFamily
			if clash == nil && v4 {
				clash = pl.anyV4
			}
			for _, id := range idents {
				if clash == nil {
					clash = pl.byIdent[id]
				}
			}
		}
		if clash != nil {
			p.errorAt(a.Pos.Line, a.Pos.Col, "listener "+a.String()+" overlaps "+clash.String()+" bound at "+clash.Pos.String())
			continue
		}
		switch kind {
		case anyFamily:
			pl.anyFamily = a
		case anyV4:
			pl.anyV4 = a
		case specific:
			for _, id := range idents {
				pl.byIdent[id] = a
			}
			if v4 && pl.firstV4 == nil {
				pl.firstV4 = a
			}
			if v6 && pl.firstV6 == nil {
				pl.firstV6 = a
			}
		}
	}
}

func first(as ...*ListenAddr) *ListenAddr {
	var best *ListenAddr
	for _, a := range as {
		if a != nil && (best == nil || less(a.Pos, best.Pos)) {
			best = a
		}
	}
	return best
}

func less(a, b Pos) bool {
	return a.Line < b.Line || (a.Line == b.Line && a.Col < b.Col)
}

func sortByPos(as []*ListenAddr) {
	slices.SortStableFunc(as, func(a, b *ListenAddr) int {
		switch {
		case less(a.Pos, b.Pos):
			return -1
		case less(b.Pos, a.Pos):
			return 1
		}
		return 0
	})
}
