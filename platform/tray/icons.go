package tray

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"sync"
)

// iconSize is the icons' edge in pixels; tray hosts scale them.
const iconSize = 32

// Colours of the looks. Exported through Colour for the adapter test.
var lookColours = [numLooks]color.NRGBA{
	LookOffline:    {0x8c, 0x8c, 0x8c, 0xff},
	LookReady:      {0x2e, 0x9e, 0x44, 0xff},
	LookRecovering: {0xf0, 0xb4, 0x00, 0xff},
	LookDegraded:   {0xf0, 0x78, 0x00, 0xff},
	LookFailed:     {0xd4, 0x20, 0x20, 0xff},
	LookAsleep:     {0x8c, 0x8c, 0x8c, 0xff},
}

// Colour is the colour of a look's icon.
func Colour(l Look) color.NRGBA { return lookColours[l] }

// icons are the PNG icons, drawn the first time the tray asks for them
// (never at package init: every rouse process links this package, and
// only `rouse tray` shows an icon): a filled disc per look, a ring for
// "offline" (so it is told apart from "asleep" without colour).
var icons = sync.OnceValue(func() [numLooks][]byte {
	var out [numLooks][]byte
	for l := range numLooks {
		out[l] = drawIcon(lookColours[l], l == LookOffline)
	}
	return out
})

// Icon is the PNG of a look.
func Icon(l Look) []byte { return icons()[l] }

// drawIcon draws an anti-aliased disc (or ring) by 4×4 supersampling.
func drawIcon(c color.NRGBA, ring bool) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, iconSize, iconSize))
	const ss = 4
	centre := float64(iconSize) / 2
	outer := centre - 2
	inner := outer - 5
	for y := range iconSize {
		for x := range iconSize {
			hits := 0
			for sy := range ss {
				for sx := range ss {
					dx := float64(x) + (float64(sx)+0.5)/ss - centre
					dy := float64(y) + (float64(sy)+0.5)/ss - centre
					d2 := dx*dx + dy*dy
					if d2 <= outer*outer && (!ring || d2 >= inner*inner) {
						hits++
					}
				}
			}
			if hits > 0 {
				p := c
				p.A = uint8(int(c.A) * hits / (ss * ss))
				img.SetNRGBA(x, y, p)
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic("tray: encode icon: " + err.Error()) // an in-memory encode of a valid image cannot fail
	}
	return buf.Bytes()
}
