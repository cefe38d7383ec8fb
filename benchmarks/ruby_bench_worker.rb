# One Ruby delayed_job worker process for benchmarks/throughput.py: no-op Struct jobs.
# Usage: DJ_DATABASE=mysql2://root@127.0.0.1:3306/db DJ_LOG=/path ruby benchmarks/ruby_bench_worker.rb
# Prints "ready" once booted and connected, waits for a line on standard input, then runs
# Delayed::Worker#work_off until a batch finds nothing and no ready row is left unlocked
# (a race lost to another worker, which delayed_job_active_record's UPDATE ... LIMIT 1 can
# lose, must not end the run early), and prints one JSON line: jobs run, CPU seconds and
# the end time (and how many deadlocks escaped work_off).
require "uri"
require "json"
require "logger"
require "active_record"
require "delayed_job"
require "delayed_job_active_record"

uri = URI.parse(ENV.fetch("DJ_DATABASE"))
ActiveRecord::Base.establish_connection(
  adapter: "mysql2", host: uri.host, port: uri.port || 3306, username: uri.user || "root",
  password: uri.password.to_s, database: uri.path.sub("/", "")
)
ActiveRecord::Base.logger = nil
logger = Logger.new(ENV.fetch("DJ_LOG", File::NULL))
logger.level = Logger::INFO
Delayed::Worker.logger = logger

NoopJob = Struct.new(:n) do
  def perform; end
end

worker = Delayed::Worker.new(quiet: true)
worker.name = "ruby.#{ENV.fetch('DJ_INDEX', '0')} pid:#{Process.pid}"
ActiveRecord::Base.connection.execute("SELECT 1")
$stdout.puts "ready"
$stdout.flush
$stdin.gets
cpu = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)
jobs = 0
deadlocks = 0
loop do
  begin
    succeeded, failed = worker.work_off
  rescue ActiveRecord::Deadlocked, ActiveRecord::LockWaitTimeout
    # delayed_job lets a deadlock in its failure path escape work_off, which ends a real
    # worker (its supervisor starts a new one); here the loop just goes on.
    deadlocks += 1
    next
  end
  jobs += succeeded + failed
  next unless (succeeded + failed).zero?
  break if Delayed::Job.where(locked_at: nil, failed_at: nil).where("run_at <= ?", Time.now.utc).count.zero?
end
cpu = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) - cpu
$stdout.puts JSON.generate(jobs: jobs, cpu: cpu, end: Time.now.to_f, deadlocks: deadlocks)
