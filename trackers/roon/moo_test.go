package roon

import (
	"bytes"
	"errors"
	"testing"
)

func TestMOO(t *testing.T) {
	t.Run("ReadsWhatMoomsgJsWrites", func(t *testing.T) {
		b := []byte("MOO/1 CONTINUE Registered\nRequest-Id: 1\nContent-Length: 17\nContent-Type: application/json\n\n{\"core_id\":\"c-1\"}")
		m, err := ParseMOO(b)
		if err != nil {
			t.Fatal(err)
		}
		if m.Verb != VerbContinue || m.Name != "Registered" || m.RequestID != 1 || string(m.Body) != `{"core_id":"c-1"}` {
			t.Errorf("parsed %+v", m)
		}
		m, err = ParseMOO([]byte("MOO/1 REQUEST com.roonlabs.ping:1/ping\nRequest-Id: 7\nLogging: quiet\n\n"))
		if err != nil || m.Service != "com.roonlabs.ping:1" || m.Name != "ping" || m.RequestID != 7 || m.Headers["Logging"] != "quiet" {
			t.Errorf("parsed %+v, %v", m, err)
		}
	})
	t.Run("WritesWhatMooJsWrites", func(t *testing.T) {
		b, _ := encodeMOO(VerbRequest, "com.roonlabs.transport:2/subscribe_zones", 2, map[string]int{"subscription_key": 0})
		want := "MOO/1 REQUEST com.roonlabs.transport:2/subscribe_zones\nRequest-Id: 2\nContent-Length: 22\nContent-Type: application/json\n\n{\"subscription_key\":0}"
		if string(b) != want {
			t.Errorf("encoded %q\nwant    %q", b, want)
		}
		b, _ = encodeMOO(VerbComplete, "Success", 5, nil)
		if string(b) != "MOO/1 COMPLETE Success\nRequest-Id: 5\n\n" {
			t.Errorf("encoded %q", b)
		}
	})
	bad := map[string]string{
		"Empty":                        "",
		"NoNewline":                    "MOO/1 COMPLETE Success",
		"NotMOO":                       "HTTP/1.1 200 OK\nRequest-Id: 1\n\n",
		"UnknownVerb":                  "MOO/1 PUSH x\nRequest-Id: 1\n\n",
		"RequestWithoutSlash":          "MOO/1 REQUEST ping\nRequest-Id: 1\n\n",
		"NoRequestId":                  "MOO/1 COMPLETE Success\n\n",
		"BadRequestId":                 "MOO/1 COMPLETE Success\nRequest-Id: x\n\n",
		"HeaderWithoutColon":           "MOO/1 COMPLETE Success\nRequest-Id: 1\nbogus\n\n",
		"NoBlankLine":                  "MOO/1 COMPLETE Success\nRequest-Id: 1\n",
		"TypeWithoutLength":            "MOO/1 COMPLETE Success\nRequest-Id: 1\nContent-Type: application/json\n\n",
		"BodyWithoutLength":            "MOO/1 COMPLETE Success\nRequest-Id: 1\n\n{}",
		"LengthWithoutType":            "MOO/1 COMPLETE Success\nRequest-Id: 1\nContent-Length: 2\n\n{}",
		"ShortBody":                    "MOO/1 COMPLETE Success\nRequest-Id: 1\nContent-Length: 5\nContent-Type: application/json\n\n{}",
		"LongBody":                     "MOO/1 COMPLETE Success\nRequest-Id: 1\nContent-Length: 1\nContent-Type: application/json\n\n{}",
		"BadJSON":                      "MOO/1 COMPLETE Success\nRequest-Id: 1\nContent-Length: 2\nContent-Type: application/json\n\n{x",
		"NegativeLength":               "MOO/1 COMPLETE Success\nRequest-Id: 1\nContent-Length: -1\n\n",
		"TwoRequestIds":                "MOO/1 COMPLETE Success\nRequest-Id: 1\nRequest-Id: 2\n\n",
		"CarriageReturnInTheFirstLine": "MOO/1 COMPLETE\r\nRequest-Id: 1\n\n",
	}
	for name, b := range bad {
		t.Run("Refuses"+name, func(t *testing.T) {
			if m, err := ParseMOO([]byte(b)); !errors.Is(err, errMOO) {
				t.Errorf("ParseMOO(%q) = %+v, %v", b, m, err)
			}
		})
	}
}

func FuzzParseMOO(f *testing.F) {
	f.Add([]byte("MOO/1 CONTINUE Changed\nRequest-Id: 2\nContent-Length: 2\nContent-Type: application/json\n\n{}"))
	f.Add([]byte("MOO/1 REQUEST com.roonlabs.ping:1/ping\nRequest-Id: 0\n\n"))
	f.Add([]byte("MOO/1 COMPLETE Success\nRequest-Id: 1\nContent-Length: 3\nContent-Type: image/jpeg\n\nabc"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMOO(b)
		if err != nil {
			return
		}
		// What parses re-encodes (JSON bodies) and parses the same.
		if m.ContentType != "application/json" || m.Body == nil {
			return
		}
		name := m.Name
		if m.Verb == VerbRequest {
			name = m.Service + "/" + m.Name
		}
		var raw = rawJSON(m.Body)
		out, err := encodeMOO(m.Verb, name, m.RequestID, raw)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		m2, err := ParseMOO(out)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		if m2.Verb != m.Verb || m2.Name != m.Name || m2.Service != m.Service || m2.RequestID != m.RequestID {
			t.Fatalf("round trip changed %+v into %+v", m, m2)
		}
	})
}

type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return bytes.TrimSpace(r), nil }

func FuzzParseSOOD(f *testing.F) {
	f.Add([]byte("SOOD\x02Q\x10query_service_id\x00\x24" + RoonServiceID + "\x04_tid\x00\x03abc"))
	f.Add([]byte("SOOD\x02R\x09http_port\x00\x049330\x04name\xff\xff"))
	f.Add([]byte("SOOD\x02R"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseSOOD(b)
		if err != nil {
			return
		}
		out, err := p.Encode()
		if err != nil {
			t.Fatalf("encode of a parsed packet: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip %q → %q", b, out)
		}
	})
}
