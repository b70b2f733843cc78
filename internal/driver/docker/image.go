package docker

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/docker/docker/api/types/image"

	"github.com/berth/berth"
)

const (
	etcPasswd = "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/data:/sbin/nologin\n"
	etcGroup  = "root:x:0:\nnobody:x:65534:\n"
)

// ImageExists reports whether the engine has an image of that reference.
func (d *Driver) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := d.cli.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case isNotFound(err):
		return false, nil
	}
	return false, d.classify(err, "inspect image "+ref)
}

// EnsureImage makes the default tenant image from a static berth binary and
// returns its reference, <instance>-tenant:<12 hex of the binary's sha256>.
// If that tag exists it returns at once. The image is FROM scratch, built
// without a registry or Dockerfile by importing a tar stream: /berth, /data
// (owned by 65534 so a fresh volume inherits it), /tmp, /etc/passwd,
// /etc/group and /etc/berth, run as 65534:65534 with entrypoint
// ["/berth","agent"].
func (d *Driver) EnsureImage(ctx context.Context, binaryPath string) (string, error) {
	sum, size, err := checkStaticBinary(binaryPath)
	if err != nil {
		return "", err
	}
	ref := d.instance + "-tenant:" + sum[:12]

	d.imgMu.Lock()
	defer d.imgMu.Unlock()
	ok, err := d.ImageExists(ctx, ref)
	if err != nil || ok {
		return ref, err
	}

	f, err := os.Open(binaryPath)
	if err != nil {
		return "", fmt.Errorf("build tenant image: %w", err)
	}
	defer f.Close()

	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := writeRootfs(pw, f, size)
		pw.CloseWithError(err) // nil closes cleanly
		done <- err
	}()
	rc, err := d.cli.ImageImport(ctx, image.ImportSource{Source: pr, SourceName: "-"}, ref, image.ImportOptions{
		Changes: []string{
			`ENTRYPOINT ["/berth","agent"]`,
			"USER " + tenantUser,
			"EXPOSE 9000/tcp",
			"WORKDIR " + dataDir,
			"LABEL " + berth.LabelInstance + "=" + d.instance,
			"ENV BERTH_AGENT_DATA=" + dataDir,
		},
		Message: "berth tenant image",
	})
	if err == nil {
		err = readProgress(rc)
		rc.Close()
	}
	pr.CloseWithError(errors.New("import finished")) // unblock the writer if the engine stopped reading
	werr := <-done
	if err != nil {
		return "", d.classify(err, "import tenant image "+ref)
	}
	if werr != nil {
		return "", fmt.Errorf("build tenant image %s: %w", ref, werr)
	}
	return ref, nil
}

// checkStaticBinary returns the hex sha256 and size of a statically linked
// ELF executable, and an ErrInvalid error for anything else.
func checkStaticBinary(path string) (sum string, size int64, err error) {
	ef, err := elf.Open(path)
	if err != nil {
		return "", 0, berth.Wrap(berth.ErrInvalid, err, fmt.Sprintf("%s is not an ELF executable", path))
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			ef.Close()
			return "", 0, berth.Errorf(berth.ErrInvalid, "%s is dynamically linked; build it with CGO_ENABLED=0", path)
		}
	}
	ef.Close()
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	size, err = io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), size, nil
}

// writeRootfs writes the tenant image's root filesystem as a tar stream.
func writeRootfs(w io.Writer, bin io.Reader, binSize int64) error {
	mtime := time.Unix(0, 0)
	tw := tar.NewWriter(w)
	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: uid, Gid: uid, ModTime: mtime})
	}
	file := func(name string, mode int64, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: size, ModTime: mtime}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	str := func(name, s string) error { return file(name, 0o644, int64(len(s)), strings.NewReader(s)) }
	for _, step := range []func() error{
		func() error { return file("berth", 0o755, binSize, io.LimitReader(bin, binSize)) },
		func() error { return dir("data/", 0o755, 65534) },
		func() error { return dir("tmp/", 0o1777, 0) },
		func() error { return dir("etc/", 0o755, 0) },
		func() error { return str("etc/passwd", etcPasswd) },
		func() error { return str("etc/group", etcGroup) },
		func() error { return dir("etc/berth/", 0o755, 0) },
		tw.Close,
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// readProgress drains the engine's JSON progress stream and returns the
// first error it reports.
func readProgress(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read import progress: %w", err)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
		if m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
	}
}
