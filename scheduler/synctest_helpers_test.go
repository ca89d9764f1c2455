package scheduler

import "testing/synctest"

func synctestWait() { synctest.Wait() }
