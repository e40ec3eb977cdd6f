// Command runas is the node runner's last step inside a container: bubblewrap sets the container
// up as root, then runs runas, which takes the pod's user, group and supplementary groups (and
// no_new_privs) and executes the container's command, found on the container's PATH, as a
// container runtime does after its own set-up. Static (no cgo), so it runs in any image's root.
// If it cannot start the command it writes why to -report-fd (close-on-exec, so the node runner
// reads nothing once the command runs) and exits 127 (not found) or 126: the runner reports a
// StartError, as a kubelet does when the runtime fails to start a container.
//
//	runas -uid 65532 -gid 65532 -groups 65532,1000 -no-new-privs -report-fd 5 -- kubemigrate ...
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

const prSetNoNewPrivs = 38

var report = os.Stderr

func fail(code int, format string, args ...any) {
	fmt.Fprintf(report, format, args...)
	os.Exit(code)
}

func groups(list string) []int {
	var out []int
	for _, g := range strings.Split(list, ",") {
		if g == "" {
			continue
		}
		n, err := strconv.Atoi(g)
		if err != nil {
			fail(2, "bad group %q", g)
		}
		out = append(out, n)
	}
	return out
}

func main() {
	uid := flag.Int("uid", 0, "user id")
	gid := flag.Int("gid", 0, "group id")
	extra := flag.String("groups", "", "supplementary group ids, comma-separated")
	nnp := flag.Bool("no-new-privs", false, "set no_new_privs (allowPrivilegeEscalation: false)")
	fd := flag.Int("report-fd", -1, "where to say why the command could not start")
	flag.Parse()
	if *fd >= 0 {
		syscall.CloseOnExec(*fd)
		report = os.NewFile(uintptr(*fd), "report")
	}
	argv := flag.Args()
	if len(argv) == 0 {
		fail(2, "no command")
	}
	if err := syscall.Setgroups(groups(*extra)); err != nil {
		fail(126, "setgroups: %v", err)
	}
	if err := syscall.Setresgid(*gid, *gid, *gid); err != nil {
		fail(126, "setgid %d: %v", *gid, err)
	}
	if err := syscall.Setresuid(*uid, *uid, *uid); err != nil {
		fail(126, "setuid %d: %v", *uid, err)
	}
	if *nnp {
		if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetNoNewPrivs, 1, 0); e != 0 {
			fail(126, "prctl(PR_SET_NO_NEW_PRIVS): %v", e)
		}
	}
	path := argv[0]
	if !strings.Contains(path, "/") {
		found, err := exec.LookPath(path)
		if err != nil {
			fail(127, "exec: %q: executable file not found in $PATH", path)
		}
		path = found
	}
	err := syscall.Exec(path, argv, os.Environ())
	code := 126
	if errors.Is(err, fs.ErrNotExist) {
		code = 127
	}
	fail(code, "exec %q: %v", path, err)
}
