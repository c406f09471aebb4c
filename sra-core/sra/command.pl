#!/usr/bin/perl
# SPDX-License-Identifier: MIT
# command.pl - the entry point VMware SRM runs (`perl command.pl < request.xml`).
# It hands stdin, untouched, to replun-sra beside it and exits with its exit status:
# exec() keeps the same stdin, stdout and stderr, so no byte is parsed or re-serialised here.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);

my $dir = dirname(abs_path($0));
my $bin = "$dir/replun-sra";

unless (-x $bin) {
	print STDERR "replun SRA: '$bin' is missing or not executable\n";
	exit 127;
}
{ exec { $bin } $bin, @ARGV };
print STDERR "replun SRA: cannot run '$bin': $!\n";
exit 127;
