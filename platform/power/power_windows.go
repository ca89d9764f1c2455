package power

import (
	"fmt"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

const (
	logindDefault  = false
	platformSource = "windows"
)

const deviceNotifyCallback = 2 // DEVICE_NOTIFY_CALLBACK

var (
	powrprof         = windows.NewLazySystemDLL("powrprof.dll")
	procRegister     = powrprof.NewProc("PowerRegisterSuspendResumeNotification")
	procUnregister   = powrprof.NewProc("PowerUnregisterSuspendResumeNotification")
	kernel32         = windows.NewLazySystemDLL("kernel32.dll")
	procTickCount64  = kernel32.NewProc("GetTickCount64")
	procUnbiasedTime = kernel32.NewProc("QueryUnbiasedInterruptTime")

	// The one callback of the process: Windows callbacks are a limited
	// resource and are never freed, so it is made once.
	callbackOnce sync.Once
	callback     uintptr
)

// deviceNotifySubscribeParameters is DEVICE_NOTIFY_SUBSCRIBE_PARAMETERS.
type deviceNotifySubscribeParameters struct {
	callback uintptr
	context  uintptr
}

// subscription keeps the parameters alive while registered.
var subscription deviceNotifySubscribeParameters

func powerCallback(context, eventType, setting uintptr) uintptr {
	HandlePowerEvent(uint32(eventType))
	return 0
}

// startPlatform registers for suspend and resume notifications. The
// callback runs the pre-sleep work synchronously: Windows waits (about 2 s)
// for it before suspending.
func startPlatform(*Monitor) (stop func(), err error) {
	if err := procRegister.Find(); err != nil {
		return nil, fmt.Errorf("find PowerRegisterSuspendResumeNotification: %w", err)
	}
	callbackOnce.Do(func() { callback = windows.NewCallback(powerCallback) })
	subscription = deviceNotifySubscribeParameters{callback: callback}
	var handle uintptr
	r, _, _ := procRegister.Call(deviceNotifyCallback,
		uintptr(unsafe.Pointer(&subscription)), uintptr(unsafe.Pointer(&handle)))
	if r != 0 {
		return nil, fmt.Errorf("PowerRegisterSuspendResumeNotification: %w", syscall.Errno(r))
	}
	return func() { _, _, _ = procUnregister.Call(handle) }, nil
}

// osClock measures time slept as GetTickCount64 (counts suspended time)
// minus QueryUnbiasedInterruptTime (does not); neither follows the wall clock.
type osClock struct{}

func (osClock) SleptTotal() (time.Duration, error) {
	if err := procUnbiasedTime.Find(); err != nil {
		return 0, fmt.Errorf("find QueryUnbiasedInterruptTime: %w", err)
	}
	var unbiased uint64 // 100 ns units
	if r, _, e := procUnbiasedTime.Call(uintptr(unsafe.Pointer(&unbiased))); r == 0 {
		return 0, fmt.Errorf("QueryUnbiasedInterruptTime: %w", e)
	}
	ms, _, _ := procTickCount64.Call()
	return max(time.Duration(ms)*time.Millisecond-time.Duration(unbiased)*100, 0), nil
}
