module github.com/strata-proxy/strata

go 1.26.0

require (
	github.com/pires/go-proxyproto v0.15.0
	go.yaml.in/yaml/v4 v4.0.0
	golang.org/x/crypto v0.59.0
)

require (
	github.com/fatih/color v1.19.0 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/spf13/cobra v1.10.2 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
	github.com/summerwind/h2spec v2.2.1+incompatible // indirect
	golang.org/x/sys v0.50.0 // indirect
)

require (
	golang.org/x/net v0.62.0
	golang.org/x/text v0.44.0 // indirect
)

tool github.com/summerwind/h2spec/cmd/h2spec
