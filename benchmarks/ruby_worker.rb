# The Ruby side of benchmarks/throughput.py and benchmarks/pg_throughput.py: delayed_job's
# own worker over no-op jobs.
# Usage: DJ_DATABASE=mysql2://root@127.0.0.1:3306/db ruby benchmarks/ruby_worker.rb
#        DJ_DATABASE=postgresql://u:p@127.0.0.1:5432/db DJ_START_AT=<epoch> ruby benchmarks/ruby_worker.rb
# With DJ_START_AT the worker waits until that wall-clock time, runs delayed_job's work_off
# until the table is empty, and prints "<ready epoch> <end epoch>"; without it, it runs
# Worker#start with exit_on_complete and prints the elapsed seconds.
require "uri"
require "logger"
require "active_record"
require "delayed_job"
require "delayed_job_active_record"

uri = URI.parse(ENV.fetch("DJ_DATABASE"))
if uri.scheme.start_with?("postgres")
  ActiveRecord::Base.establish_connection(
    adapter: "postgresql", host: uri.host, port: uri.port || 5432, username: uri.user,
    password: uri.password.to_s, database: uri.path.sub("/", "")
  )
else
  ActiveRecord::Base.establish_connection(
    adapter: "mysql2", host: uri.host, port: uri.port || 3306, username: uri.user || "root",
    password: uri.password.to_s, database: uri.path.sub("/", "")
  )
end
ActiveRecord::Base.logger = nil
Delayed::Worker.logger = Logger.new(File::NULL)

NoopJob = Struct.new(:n) do
  def perform; end
end

if ENV["DJ_START_AT"]
  worker = Delayed::Worker.new(quiet: true)
  Delayed::Job.connection.execute("SELECT 1")
  ready = Time.now.to_f
  pause = ENV["DJ_START_AT"].to_f - ready
  sleep(pause) if pause.positive?
  # Worker#start's loop without its sleep: a lost race for a row (no SKIP LOCKED in
  # delayed_job_active_record 4.1.6) must not end the run while jobs remain.
  worker.work_off until Delayed::Job.count.zero?
  puts format("%.6f %.6f", ready, Time.now.to_f)
else
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  Delayed::Worker.new(exit_on_complete: true, quiet: true).start
  elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
  puts format("%.3f", elapsed)
end
