#!/usr/bin/perl
# lxcq's CRIU socket probe: a process holding the kinds of sockets every ordinary container has
# (a unix socket like syslogd's /dev/log, a TCP socket), for `criu dump -t PID` to prove that this
# criu can dump sockets on this kernel. `criu check` passes where a dump of any such socket fails
# (criu 4.1.1 on Linux >= 6.16: "sockets: Can't get 1:34 opt: Operation not supported").
# Run by scripts/setup-host.sh and by the worker (packages/lxc-ffi/src/host.ts: criuStatus).
# Usage: perl criu-probe.pl DIR; writes DIR/ready once its sockets exist, then sleeps until killed.
use strict;
use warnings;
use IO::Socket::INET;
use IO::Socket::UNIX;
use POSIX ();
use Socket;

my $dir = shift or die "usage: criu-probe.pl DIR\n";
# Its own session (criu refuses a tree whose session leader is outside it) and only its own
# files: whatever the caller leaked (pipes, its log) is not what the probe is about.
POSIX::setsid();
POSIX::close($_) for 3 .. 255;
my $unix = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Local => "$dir/probe.sock", Listen => 1)
  or die "unix socket: $!\n";
my $tcp = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1, Proto => 'tcp')
  or die "tcp socket: $!\n";
open(my $ready, '>', "$dir/ready") or die "$dir/ready: $!\n";
close $ready;
sleep 1 while 1;
