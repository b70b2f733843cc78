package berth

import (
	"errors"
	"testing"
)

func TestDefaultPlansHaveOriginalFigures(t *testing.T) {
	t.Parallel()
	ps := DefaultPlans()
	if err := ps.Validate(); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		memGiB     int64
		cpus       float64
		actions    int
		containers int
		price      int
	}{
		"free":    {2, 1, 20, 1, 0},
		"starter": {4, 2, 100, 1, 29},
		"pro":     {8, 4, 500, 1, 79},
		"agency":  {16, 8, 500, 5, 299},
	}
	for name, w := range want {
		p, err := ps.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if p.MemoryBytes != w.memGiB*GiB || p.CPUs != w.cpus || p.ActionsPerDay != w.actions || p.ContainersPerUser != w.containers || p.PriceMonthly != w.price {
			t.Errorf("%s = %+v, want %+v", name, p, w)
		}
	}
	if got := ps.Names(); len(got) != 4 || got[0] != "free" || got[3] != "agency" {
		t.Errorf("Names() = %v, want cheapest first", got)
	}
}

func TestUnknownPlan(t *testing.T) {
	t.Parallel()
	_, err := DefaultPlans().Get("platinum")
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Get(platinum) err = %v, want ErrInvalid", err)
	}
}

func TestValidateUserID(t *testing.T) {
	t.Parallel()
	ok := []string{"a", "user_test123", "A-b_9", string(make64('x'))}
	bad := []string{"", "has space", "../etc", "a/b", "é", "semi;colon", string(make64('x')) + "y", "a\x00b"}
	for _, s := range ok {
		if err := ValidateUserID(s); err != nil {
			t.Errorf("ValidateUserID(%q) = %v", s, err)
		}
	}
	for _, s := range bad {
		if err := ValidateUserID(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateUserID(%q) = %v, want ErrInvalid", s, err)
		}
	}
}

func make64(c byte) []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return b
}

func TestValidateEmail(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"test@example.com", "a.b+c@d.example"} {
		if err := ValidateEmail(s); err != nil {
			t.Errorf("ValidateEmail(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "nope", "Name <a@b.c>", "a@"} {
		if err := ValidateEmail(s); err == nil {
			t.Errorf("ValidateEmail(%q) accepted", s)
		}
	}
}

func TestErrorCodesAndMessages(t *testing.T) {
	t.Parallel()
	err := Errorf(ErrCapacity, "insufficient capacity: need 16 GiB")
	if ErrorCode(err) != "insufficient_capacity" || ErrorMessage(err) != "insufficient capacity: need 16 GiB" {
		t.Errorf("code %q message %q", ErrorCode(err), ErrorMessage(err))
	}
	wrapped := Wrap(ErrUnavailable, errors.New("dial unix /var/run/docker.sock: secret detail"), "docker engine unreachable")
	if ErrorMessage(wrapped) != "docker engine unreachable" {
		t.Errorf("message leaks cause: %q", ErrorMessage(wrapped))
	}
	if ErrorMessage(errors.New("boom")) != "internal error" {
		t.Error("unknown errors must get a generic message")
	}
}
