// Command peer is the workload of the netprof tests: a TCP server and
// client with a tiny protocol, and an HTTP server.
//
//	peer server ADDR          accept; per connection read a header (send
//	                          size, reply size: two big-endian uint64), read
//	                          that many bytes, write the reply, wait for EOF
//	peer client ADDR SEND REPLY HOLD
//	                          wait for a line on stdin, connect, send, read
//	                          the reply, keep the connection HOLD long, close,
//	                          print "done"
//	peer http ADDR            net/http: /fail answers 500, anything else 200
//
// Servers print "listening" once ready.
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fail("usage: peer server|client|http ADDR ...")
	}
	switch os.Args[1] {
	case "server":
		server(os.Args[2])
	case "client":
		if len(os.Args) != 6 {
			fail("usage: peer client ADDR SEND REPLY HOLD")
		}
		send, _ := strconv.ParseUint(os.Args[3], 10, 64)
		reply, _ := strconv.ParseUint(os.Args[4], 10, 64)
		hold, err := time.ParseDuration(os.Args[5])
		if err != nil {
			fail(err.Error())
		}
		client(os.Args[2], send, reply, hold)
	case "http":
		httpServer(os.Args[2])
	default:
		fail("unknown mode " + os.Args[1])
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(2)
}

func listen(addr string) net.Listener {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fail(err.Error())
	}
	fmt.Println("listening")
	return l
}

func server(addr string) {
	l := listen(addr)
	for {
		c, err := l.Accept()
		if err != nil {
			fail(err.Error())
		}
		go func() {
			defer c.Close()
			var hdr [16]byte
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				return
			}
			n := binary.BigEndian.Uint64(hdr[:8])
			reply := binary.BigEndian.Uint64(hdr[8:])
			if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
				return
			}
			if _, err := c.Write(make([]byte, reply)); err != nil {
				return
			}
			io.Copy(io.Discard, c) // until the client closes
		}()
	}
}

func client(addr string, send, reply uint64, hold time.Duration) {
	bufio.NewReader(os.Stdin).ReadString('\n')
	c, err := net.Dial("tcp", addr)
	if err != nil {
		fail(err.Error())
	}
	var hdr [16]byte
	binary.BigEndian.PutUint64(hdr[:8], send)
	binary.BigEndian.PutUint64(hdr[8:], reply)
	buf := make([]byte, 64<<10)
	if _, err := c.Write(hdr[:]); err != nil {
		fail(err.Error())
	}
	for left := send; left > 0; {
		n := min(left, uint64(len(buf)))
		if _, err := c.Write(buf[:n]); err != nil {
			fail(err.Error())
		}
		left -= n
	}
	if _, err := io.CopyN(io.Discard, c, int64(reply)); err != nil {
		fail(err.Error())
	}
	time.Sleep(hold)
	c.Close()
	fmt.Println("done")
}

func httpServer(addr string) {
	l := listen(addr)
	mux := http.NewServeMux()
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "failed on purpose", http.StatusInternalServerError)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	fail(http.Serve(l, mux).Error())
}
