module github.com/melcache/melcache/examples/hello-go

go 1.26.0

require (
	github.com/spf13/pflag v1.0.10
	golang.org/x/mod v0.42.0
)
