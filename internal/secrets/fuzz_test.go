package secrets

import "testing"

// FuzzOpen: arbitrary stored text never panics the opener and never opens.
func FuzzOpen(f *testing.F) {
	kr, _ := NewKeyring(make([]byte, KeySize))
	good, _ := kr.Seal([]byte("v"), []byte("a"))
	f.Add(good)
	f.Add("bsec1:0000000000000000:")
	f.Add("bsec1::::")
	f.Fuzz(func(t *testing.T, ct string) {
		pt, err := kr.Open(ct, []byte("b")) // wrong binding: must never open
		if err == nil {
			t.Fatalf("opened %q to %q under the wrong binding", ct, pt)
		}
	})
}
