module github.com/strata-proxy/strata

go 1.26.0

require (
	github.com/pires/go-proxyproto v0.15.0
	github.com/quic-go/qpack v0.6.0
	github.com/quic-go/quic-go v0.65.0
	go.yaml.in/yaml/v4 v4.0.0
	golang.org/x/crypto v0.59.0
)

require golang.org/x/sys v0.50.0 // indirect

require (
	golang.org/x/net v0.62.0
	golang.org/x/text v0.44.0 // indirect
)
