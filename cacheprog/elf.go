package cacheprog

import (
	"debug/elf"
	"fmt"
	"strings"
)

// elfMachines maps the arch names melange (--arch) and Go use to the ELF
// machine a forwarder for that guest must be built for.
var elfMachines = map[string]elf.Machine{
	"x86_64": elf.EM_X86_64, "amd64": elf.EM_X86_64,
	"aarch64": elf.EM_AARCH64, "arm64": elf.EM_AARCH64,
	"armv7": elf.EM_ARM, "armhf": elf.EM_ARM, "arm": elf.EM_ARM,
	"x86": elf.EM_386, "386": elf.EM_386,
	"ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390, "riscv64": elf.EM_RISCV,
}

// CheckForwarder checks that the file at path can run as the forwarder in
// a guest of arch: an ELF executable for arch's machine without a program
// interpreter (PT_INTERP), i.e. statically linked, as CGO_ENABLED=0 Go
// binaries are; a guest has no host libc to load. The error says what to
// build instead.
func CheckForwarder(path, arch string) error {
	want, ok := elfMachines[strings.ToLower(arch)]
	if !ok {
		return fmt.Errorf("cacheprog forwarder: unknown guest arch %q", arch)
	}
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("cacheprog forwarder %s: not an ELF executable: %w", path, err)
	}
	defer f.Close()
	if f.Machine != want {
		return fmt.Errorf("cacheprog forwarder %s is for %v, the guest is %s (%v): build one with GOARCH for the guest and CGO_ENABLED=0, and pass --cacheprog-binary", path, f.Machine, arch, want)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("cacheprog forwarder %s is dynamically linked (it has a program interpreter): build melcache with CGO_ENABLED=0 and pass --cacheprog-binary", path)
		}
	}
	return nil
}
